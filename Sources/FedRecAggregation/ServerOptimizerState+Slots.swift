import FedRecModel

extension ServerOptimizerState {
    /// Adds zeroed state (v = `initialV`) for the rows of `touched` that have none.
    /// - Returns: the state slot of each touched row.
    /// - Complexity: O(rows + touched).
    mutating func slots(for touched: [Int32], width w: Int, initialV: Float, usesV: Bool) -> [Int] {
        var merged: [Int32] = [], mergedM: [Float] = [], mergedV: [Float] = []
        merged.reserveCapacity(rows.count + touched.count)
        var slotOfTouched = [Int](repeating: 0, count: touched.count)
        var i = 0, j = 0
        while i < rows.count || j < touched.count {
            let takeOld = j == touched.count || (i < rows.count && rows[i] <= touched[j])
            let row = takeOld ? rows[i] : touched[j]
            if takeOld {
                mergedM.append(contentsOf: m[(i * w)..<((i + 1) * w)])
                if usesV { mergedV.append(contentsOf: v[(i * w)..<((i + 1) * w)]) }
            } else {
                mergedM.append(contentsOf: repeatElement(0, count: w))
                if usesV { mergedV.append(contentsOf: repeatElement(initialV, count: w)) }
            }
            if j < touched.count && touched[j] == row {
                slotOfTouched[j] = merged.count
                j += 1
            }
            if takeOld { i += 1 }
            merged.append(row)
        }
        rows = merged
        m = mergedM
        v = usesV ? mergedV : []
        return slotOfTouched
    }
}
