#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A line chart over rounds as inline SVG: one line per run, optional dashed reference
/// lines (a popularity baseline, a privacy budget), axes with round-number ticks, and a
/// `<title>` on every point so a browser shows its value on hover without any script.
struct LineChart {
    struct Series {
        var name: String
        /// Index into `LineChart.palette`.
        var color: Int
        var points: [(x: Double, y: Double)]
    }

    struct Reference {
        var label: String
        /// Index into `LineChart.palette`; nil for a line several runs share (grey).
        var color: Int?
        var y: Double
    }

    /// Okabe–Ito's colour-blind-safe palette (without its yellow, too pale on white).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    var title: String
    var yLabel: String
    var series: [Series]
    var references: [Reference] = []
    /// Whether the value axis starts at zero (counts, costs, ε) whatever the data.
    var fromZero = false
    /// Formats a value for point titles (ticks use the step's precision).
    var format: (Double) -> String = NumberText.metric

    static let width = 560.0, height = 250.0
    static let left = 64.0, right = 16.0, top = 30.0, bottom = 40.0

    /// Whether the chart has anything to draw.
    var isEmpty: Bool { series.allSatisfy(\.points.isEmpty) }

    /// Adds a reference line for one run's value; runs that share the value share one
    /// grey line, labelled without a run's name.
    mutating func addReference(_ label: String, run: String, color: Int, y: Double, runs: Int) {
        if let i = references.firstIndex(where: { abs($0.y - y) <= 1e-12 * max(1, abs(y)) }) {
            references[i] = Reference(label: label, color: nil, y: y)
            return
        }
        references.append(Reference(label: runs == 1 ? label : "\(label) (\(run))", color: color, y: y))
    }

    func svg() -> String {
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.map(\.y) } + references.map(\.y) + (fromZero ? [0] : [])
        let xAxis = Axis(values: xs, integral: true)
        let yAxis = Axis(values: ys, integral: false)
        let plotWidth = Self.width - Self.left - Self.right, plotHeight = Self.height - Self.top - Self.bottom
        func px(_ x: Double) -> Double { Self.left + (x - xAxis.low) / (xAxis.high - xAxis.low) * plotWidth }
        func py(_ y: Double) -> Double { Self.top + plotHeight - (y - yAxis.low) / (yAxis.high - yAxis.low) * plotHeight }
        func n(_ v: Double) -> String { NumberText.fixed(v, 1) }

        var svg = #"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \#(Int(Self.width)) \#(Int(Self.height))" "#
        svg += #"width="\#(Int(Self.width))" height="\#(Int(Self.height))" role="img" aria-label="\#(escapeMarkup(title))">"#
        svg += "<title>\(escapeMarkup(title))</title>"
        svg += #"<text class="chart-title" x="\#(n(Self.left))" y="18">\#(escapeMarkup(title))</text>"#
        // Grid and ticks.
        for y in yAxis.ticks {
            svg += #"<line class="grid" x1="\#(n(Self.left))" x2="\#(n(Self.left + plotWidth))" y1="\#(n(py(y)))" y2="\#(n(py(y)))"/>"#
            svg += #"<text class="tick" x="\#(n(Self.left - 6))" y="\#(n(py(y) + 4))" text-anchor="end">\#(NumberText.tick(y, step: yAxis.step))</text>"#
        }
        for x in xAxis.ticks {
            svg += #"<line class="grid" x1="\#(n(px(x)))" x2="\#(n(px(x)))" y1="\#(n(Self.top))" y2="\#(n(Self.top + plotHeight))"/>"#
            svg += #"<text class="tick" x="\#(n(px(x)))" y="\#(n(Self.top + plotHeight + 16))" text-anchor="middle">\#(NumberText.tick(x, step: xAxis.step))</text>"#
        }
        svg += #"<rect class="frame" x="\#(n(Self.left))" y="\#(n(Self.top))" width="\#(n(plotWidth))" height="\#(n(plotHeight))"/>"#
        svg += #"<text class="axis-label" x="\#(n(Self.left + plotWidth / 2))" y="\#(n(Self.height - 6))" text-anchor="middle">round</text>"#
        svg += #"<text class="axis-label" transform="translate(14 \#(n(Self.top + plotHeight / 2))) rotate(-90)" text-anchor="middle">\#(escapeMarkup(yLabel))</text>"#
        for reference in references {
            let color = reference.color.map { Self.palette[$0 % Self.palette.count] } ?? "#777777"
            svg += #"<line class="reference" stroke="\#(color)" x1="\#(n(Self.left))" x2="\#(n(Self.left + plotWidth))" y1="\#(n(py(reference.y)))" y2="\#(n(py(reference.y)))">"#
            svg += "<title>\(escapeMarkup(reference.label)): \(escapeMarkup(format(reference.y)))</title></line>"
            svg += #"<text class="reference-label" style="fill:\#(color)" x="\#(n(Self.left + plotWidth - 4))" y="\#(n(py(reference.y) - 4))" text-anchor="end">\#(escapeMarkup(reference.label))</text>"#
        }
        for line in series where !line.points.isEmpty {
            let color = Self.palette[line.color % Self.palette.count]
            let path = line.points.map { "\(n(px($0.x))),\(n(py($0.y)))" }.joined(separator: " ")
            svg += #"<polyline class="series" stroke="\#(color)" points="\#(path)"/>"#
            for point in line.points {
                svg += #"<circle fill="\#(color)" cx="\#(n(px(point.x)))" cy="\#(n(py(point.y)))" r="2.5">"#
                svg += "<title>\(escapeMarkup(line.name)), round \(Int(point.x)): \(escapeMarkup(format(point.y)))</title></circle>"
            }
        }
        return svg + "</svg>"
    }
}

/// An axis: a range that holds every value, widened to whole tick steps of 1, 2 or 5
/// times a power of ten (integral axes, rounds, take steps of at least 1).
struct Axis {
    var low: Double
    var high: Double
    var step: Double

    init(values: [Double], integral: Bool) {
        var low = values.min() ?? 0, high = values.max() ?? 1
        if !low.isFinite || !high.isFinite { low = 0; high = 1 }
        if high - low < 1e-12 {
            let pad = integral ? 1 : max(abs(low) * 0.05, 1e-6)
            low -= pad
            high += pad
        }
        let rough = (high - low) / 5
        let magnitude = pow(10, floor(log10(rough)))
        let residual = rough / magnitude
        var step = (residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10) * magnitude
        if integral { step = max(1, step.rounded()) }
        self.low = floor(low / step) * step
        self.high = ceil(high / step) * step
        if integral && self.low < 0 && low >= 0 { self.low = 0 }
        self.step = step
    }

    var ticks: [Double] {
        var ticks: [Double] = []
        var i = 0.0
        while low + i * step <= high + step * 1e-9 && ticks.count < 50 {
            ticks.append(low + i * step)
            i += 1
        }
        return ticks
    }
}
