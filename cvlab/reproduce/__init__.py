"""`cvlab reproduce`: the course's experiments run and every claim of its notebooks checked, item
by item (catalog.yaml, measures, rules), into reproduction.json and a report."""
