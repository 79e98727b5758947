import FedRecMechanisms
import FedRecWire

/// Client-level DP's two client-side steps, written once for every model family that
/// trains by local SGD (mf, ncf, text-lora; DP-FedAvg, McMahan et al. 2018): each
/// client's whole update (every tensor it contributes, flattened) clipped to L2 norm C,
/// and the shard's update recording the clip, the clipped count and the Poisson sampling
/// (`PoissonSampling`) that `fl-dp-noise` and its accountant read.
public enum ClientClipping {
    /// The factor a client's update of squared L2 norm `squaredNorm` is scaled by so that
    /// its norm is `clip`; nil when it is within `clip` already or `clip` is 0 (no
    /// clipping), so that an unclipped update is left bit for bit as it was.
    @inline(__always)
    public static func factor(squaredNorm: Double, clip: Double) -> Float? {
        guard clip > 0 else { return nil }
        let norm = squaredNorm.squareRoot()
        guard norm > clip else { return nil }
        return Float(clip / norm)
    }
}

extension UpdateHeader {
    /// Records a shard's Poisson client sampling (DP-FedAvg): the rate, the clients the
    /// shard holds (sampled or not) and where the sampling key came from. Nothing when
    /// the clients were not sampled.
    public mutating func recordSampling(_ drawn: (sampling: PoissonSampling, key: SamplingKeySource)?, population: Int) {
        guard let drawn else { return }
        sampleRate = drawn.sampling.rate
        self.population = population
        extra[DPMetadata.samplingKey] = drawn.key.rawValue
    }
}
