#!/usr/bin/env python3
"""Sample the memory of a process tree until its root exits.

usage: tree_memory.py ROOT_PID OUT_FILE [INTERVAL_SECONDS]
       tree_memory.py --list ROOT_PID   (print the tree's pids, descendants first)

Every INTERVAL (default 0.2 s) it walks /proc for ROOT_PID and all its descendants
(Ray's raylet, GCS and worker processes are descendants of the simulation) and sums
their PSS (proportional set size, /proc/PID/smaps_rollup: shared pages such as Ray's
plasma store are split between the processes mapping them, so the sum does not count
them twice) and their RSS (which does). On exit it writes one line to OUT_FILE:
  peak_pss_kib peak_rss_sum_kib peak_largest_rss_kib peak_processes samples
Reads only /proc, standard library only.
"""

import os
import sys
import time


def children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def memory(pid):
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def main():
    if sys.argv[1] == "--list":
        print(" ".join(str(p) for p in reversed(tree(int(sys.argv[2])))))
        return
    root, out_file = int(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    peak_pss = peak_rss = peak_largest = peak_procs = samples = 0
    while os.path.exists(f"/proc/{root}"):
        pids = tree(root)
        pss_sum = rss_sum = largest = 0
        for pid in pids:
            pss, rss = memory(pid)
            pss_sum += pss
            rss_sum += rss
            largest = max(largest, rss)
        peak_pss = max(peak_pss, pss_sum)
        peak_rss = max(peak_rss, rss_sum)
        peak_largest = max(peak_largest, largest)
        peak_procs = max(peak_procs, len(pids))
        samples += 1
        time.sleep(interval)
    with open(out_file, "w") as f:
        f.write(f"{peak_pss} {peak_rss} {peak_largest} {peak_procs} {samples}\n")


if __name__ == "__main__":
    main()
