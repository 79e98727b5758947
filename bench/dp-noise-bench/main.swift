// dp-noise-bench: throughput of the exact discrete Gaussian sampler and of grid noise, with
// noise from the system CSPRNG (as private runs draw it). Run by bench/dp-noise-throughput;
// not a fedrec command, and not a test (timings do not belong in tests).
//
//   dp-noise-bench [COUNT]     # draws per measurement (default 2000000)
//
// Prints one line per measurement: what, draws per second, draws, seconds.
import FedRecCore
import Foundation
import FedRecMechanisms

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let arguments = Array(CommandLine.arguments.dropFirst())
let count = arguments.isEmpty ? 2_000_000 : arguments.count == 1 ? Int(arguments[0]) ?? 0 : 0
guard count > 0 else {
    FileHandle.standardError.write(Data("usage: dp-noise-bench [COUNT]\n".utf8))
    exit(64)
}
do {
    var buffer = [Int64](repeating: 0, count: count)
    for sigma in [1.0, 50.0, 1e4] {
        let sampler = try DiscreteGaussian(sigma: sigma)
        let source = SystemNoiseSource()
        let s = seconds { sampler.sample(into: &buffer, from: source) }
        print("discrete Gaussian σ=\(sigma)\t\(Int(Double(count) / s)) draws/s\t\(count)\t\(s) s")
    }
    var floats = [Float](repeating: 0.5, count: count)
    let s = try seconds { try GridNoise.addNoise(to: &floats, sigma: 1, granularity: 0x1p-12, source: SystemNoiseSource()) }
    print("grid noise σ/g=4096\t\(Int(Double(count) / s)) coordinates/s\t\(count)\t\(s) s")
} catch {
    FileHandle.standardError.write(Data("dp-noise-bench: \(error)\n".utf8))
    exit(1)
}
