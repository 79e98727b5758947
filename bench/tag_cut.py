"""The per-user tag hold-out of `fl-partition --queries` (QueryLog.assign), for the bench
scripts that cut MovieLens tags.csv the same way: users with at least 5 tags are cut at
the time of their (floor(0.8 n))-th tag by time (equal times in file order), and only the
tags before that time are training tags; users with fewer keep every tag.

    import tag_cut
    header, body = tag_cut.read("tags.csv")
    training = tag_cut.training_tags(body)   # user -> indices into body, file order
"""
import collections
import csv


def read(path):
    """tags.csv's header row and its other rows (userId, movieId, tag, timestamp)."""
    rows = list(csv.reader(open(path, newline="", encoding="utf-8")))
    return rows[0], rows[1:]


def training_tags(body):
    """Each user's training tags (those before the user's test cut), as indices into
    `body` in file order; users left with none are not listed."""
    by_user = collections.defaultdict(list)
    for i, r in enumerate(body):
        by_user[r[0]].append(i)
    training = {}
    for user, events in by_user.items():
        ordered = sorted(events, key=lambda i: (int(body[i][3]), i))
        cut = int(body[ordered[len(ordered) * 800 // 1000]][3]) if len(ordered) >= 5 else None
        kept = [i for i in events if cut is None or int(body[i][3]) < cut]
        if kept:
            training[user] = kept
    return training
