#!/usr/bin/env python3
"""Generate playlists/src/openooh_data.rs from the OpenOOH 1.2.1 venue taxonomy.

Usage: python3 playlists/tools/gen_openooh.py [DATA_DIR] [OUT_FILE]

DATA_DIR defaults to ../shared/data/openooh beside the workspace; OUT_FILE to
playlists/src/openooh_data.rs. Run rustfmt on the output afterwards.

The markdown (specification-1.2.md) is authoritative for ids, string values
and display names. The CSV (openooh-1.2-to-1.1-mapping.csv) only contributes
aliases: a CSV 1.2 string value that differs from the markdown's value for the
same id, whose id the markdown has, whose depth matches the id's tier, and
that names no other id. Every decision the script takes on the data (fixes,
skipped CSV rows) is printed to stderr and written into the generated header.
"""

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[3] / "shared" / "data" / "openooh"
DEFAULT_OUT = HERE.parents[1] / "src" / "openooh_data.rs"

VALUE_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def tier(venue_id):
    """1 for a category (1..99), 2 for a subcategory, 3 for a leaf."""
    t = 1
    while venue_id >= 100:
        venue_id //= 100
        t += 1
    return t


def parse_markdown(path, notes):
    """Rows (id, value, name) of the parent, child and grandchild tables."""
    rows = []
    section = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("## "):
            title = line[3:].strip()
            if title.startswith("Parent Categories"):
                section = "parent"
            elif title.startswith("Child Categories"):
                section = "child"
            elif title.startswith("Grandchild Categories"):
                section = "grandchild"
            else:
                section = None
            continue
        if section is None or not line.startswith("|"):
            continue
        body = line.strip()[1:]
        if body.endswith("|"):
            body = body[:-1]
        cells = [c.strip() for c in body.split("|")]
        expected = 3 if section == "parent" else 4
        if len(cells) != expected:
            sys.exit(f"{path}:{lineno}: expected {expected} cells, found {len(cells)}")
        if set(cells[0]) <= set("-: ") or not cells[-2].isdigit():
            continue  # header or separator row
        venue_id = int(cells[-2])
        raw = cells[-1]
        value = raw.replace("\\_", "_").strip()
        if value.endswith("."):
            notes.append(f"{venue_id}: markdown value {value!r} has a trailing dot; dropped")
            value = value.rstrip(".")
        if not VALUE_RE.match(value):
            sys.exit(f"{path}:{lineno}: malformed string value {raw!r}")
        name = " ".join(cells[0].split())
        rows.append((venue_id, value, name))
    return rows


def parse_csv(path):
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        return [(row[0].strip(), int(row[1])) for row in reader if row]


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    notes = []
    md_rows = parse_markdown(data / "specification-1.2.md", notes)
    csv_rows = parse_csv(data / "openooh-1.2-to-1.1-mapping.csv")
    csv_by_id = {}
    csv_id_of = {}
    for value, venue_id in csv_rows:
        csv_by_id.setdefault(venue_id, value)
        csv_id_of.setdefault(value, venue_id)

    by_id = {}
    for venue_id, value, name in md_rows:
        if venue_id in by_id:
            sys.exit(f"markdown: duplicate id {venue_id}")
        by_id[venue_id] = [value, name]

    # Duplicate string values: the id the CSV gives that value keeps it; the
    # other rows take their CSV value when that is free, else we stop.
    owners = {}
    for venue_id, (value, _) in sorted(by_id.items()):
        owners.setdefault(value, []).append(venue_id)
    for value, ids in owners.items():
        if len(ids) == 1:
            continue
        keeper = csv_id_of.get(value)
        if keeper not in ids:
            sys.exit(f"markdown: {value!r} names ids {ids} and the CSV does not settle it")
        for venue_id in ids:
            if venue_id == keeper:
                continue
            fix = csv_by_id.get(venue_id)
            taken = {v for v, _ in by_id.values()}
            if fix is None or fix in taken:
                sys.exit(f"markdown: {value!r} names ids {ids}; no free CSV value for {venue_id}")
            by_id[venue_id][0] = fix
            notes.append(
                f"{venue_id}: markdown repeats {value!r} (the value of {keeper}); "
                f"using the CSV's value {fix!r}"
            )

    for venue_id, (value, _) in by_id.items():
        if venue_id >= 100 and venue_id // 100 not in by_id:
            sys.exit(f"markdown: {venue_id} has no parent {venue_id // 100}")
        if value.count(".") + 1 != tier(venue_id):
            notes.append(f"{venue_id}: value {value!r} has a depth other than its tier")

    primary = {value: venue_id for venue_id, (value, _) in by_id.items()}
    aliases = {}
    for value, venue_id in csv_rows:
        if venue_id not in by_id:
            notes.append(f"CSV row {value!r} ({venue_id}): id not in the markdown; skipped")
            continue
        if value in primary:
            if primary[value] != venue_id:
                notes.append(
                    f"CSV row {value!r} ({venue_id}): the markdown gives that value "
                    f"id {primary[value]}; skipped"
                )
            continue
        if value.count(".") + 1 != tier(venue_id):
            notes.append(
                f"CSV row {value!r} ({venue_id}): depth does not match the id's tier "
                f"(markdown: {by_id[venue_id][0]!r}); skipped"
            )
            continue
        if aliases.get(value, venue_id) != venue_id:
            sys.exit(f"CSV: alias {value!r} names two ids")
        aliases[value] = venue_id

    for note in notes:
        print(note, file=sys.stderr)

    lines = [
        "//! OpenOOH Venue Taxonomy 1.2.1 as static tables (Apache-2.0, openooh/venue-taxonomy).",
        "//!",
        "//! GENERATED by `playlists/tools/gen_openooh.py` from `shared/data/openooh/`",
        "//! (`specification-1.2.md` for ids, values and names; the 1.2-to-1.1 CSV for",
        "//! aliases only). Do not edit by hand: change the script and run it again,",
        "//! then rustfmt. `taxonomy.rs` owns the lookups; this file only holds data.",
        "//!",
        "//! Decisions taken on the source data:",
    ]
    lines += [f"//! - {note}" for note in notes]
    lines += [
        "",
        "/// `(id, 1.2.1 string value, display name)`, sorted by id.",
        "pub(crate) static VENUE_TYPES: &[(u32, &str, &str)] = &[",
    ]
    for venue_id in sorted(by_id):
        value, name = by_id[venue_id]
        lines.append(f"    ({venue_id}, {rust_str(value)}, {rust_str(name)}),")
    lines += [
        "];",
        "",
        "/// `(CSV string value, id)` for values that differ from the markdown's, sorted by value.",
        "pub(crate) static ALIASES: &[(&str, u32)] = &[",
    ]
    for value in sorted(aliases):
        lines.append(f"    ({rust_str(value)}, {aliases[value]}),")
    lines += ["];", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}: {len(by_id)} venue types, {len(aliases)} aliases", file=sys.stderr)


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
