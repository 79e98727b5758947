/// The Gaussian noise both DP modes add: exact discrete Gaussian on a fine power-of-two
/// grid (`GridNoise`, Canonne-Kamath-Steinke 2020), so the floating-point attack of
/// Mironov 2012 does not apply.
public enum DPNoise {
    /// The grid spacing g for noising `coordinates` values clipped (jointly) at L2 norm
    /// `clip` with noise multiplier z: the largest power of two with g·√D ≤ C/1000 (grid
    /// rounding then costs at most 0.1 % of sensitivity), doubled while σ/g would reach
    /// 2^23 (the sampler's range is below 2^24 grid units).
    public static func granularity(clip: Double, noiseMultiplier z: Double, coordinates: Int) -> Double {
        let root = Double(max(coordinates, 1)).squareRoot()
        var g = Double(sign: .plus, exponent: Int((clip / (1000 * root)).exponent), significand: 1)
        while z * (clip + g * root) / g >= 0x1p23 { g *= 2 }
        return g
    }

    /// σ = z · (C + g·√D): the noise that gives noise multiplier z against the sensitivity
    /// of a sum rounded to the grid (`GridNoise.gridSensitivity`).
    public static func sigma(clip: Double, noiseMultiplier z: Double, granularity g: Double, coordinates: Int) -> Double {
        z * GridNoise.gridSensitivity(clip: clip, granularity: g, dimension: coordinates)
    }

    /// Adds N_Z(0, σ²) on the grid to every value, with σ and g chosen as above.
    /// - Returns: the granularity used.
    @discardableResult
    public static func addNoise(
        to values: inout [Float], clip: Double, noiseMultiplier z: Double, source: any NoiseSource
    ) throws -> Double {
        let g = granularity(clip: clip, noiseMultiplier: z, coordinates: values.count)
        let s = sigma(clip: clip, noiseMultiplier: z, granularity: g, coordinates: values.count)
        try GridNoise.addNoise(to: &values, sigma: s, granularity: g, source: source)
        return g
    }

    /// ε of one Gaussian release with noise multiplier z and no sampling (local DP).
    public static func singleReleaseEpsilon(noiseMultiplier z: Double, delta: Double) throws -> Double {
        try RDPAccountant().epsilon(sampleRate: 1, noiseMultiplier: z, steps: 1, delta: delta).epsilon
    }
}
