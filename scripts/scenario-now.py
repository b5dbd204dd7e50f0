#!/usr/bin/env python3
"""Moves a scenario's flights to now: every campaign and the window from a day ago to six
days ahead, its timed events dropped, so what it publishes plays now. With --all-hours,
every venue is open around the clock too (a test that runs at any hour: a metro station is
closed at night, Beijing time). Used by scripts/install-test.sh and scripts/bench-city.sh.

    scripts/scenario-now.py SCENARIO.json [--all-hours]
"""
import datetime
import json
import sys

args = sys.argv[1:]
if not args or args[0].startswith("-") or any(a not in ("--all-hours",) for a in args[1:]):
    sys.exit(__doc__)
path = args[0]
try:
    with open(path, encoding="utf-8") as f:
        scenario = json.load(f)
    campaigns, venues = scenario["campaigns"], scenario["venues"]
except (OSError, ValueError) as e:
    sys.exit(f"scenario-now: {path}: {e}")
except (KeyError, TypeError):
    sys.exit(f"scenario-now: {path}: not a scenario (an object with campaigns and venues)")
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
span = {"start": (now - datetime.timedelta(days=1)).isoformat(),
        "end": (now + datetime.timedelta(days=6)).isoformat()}
scenario["window"] = dict(span)
for campaign in campaigns:
    campaign["flight"] = dict(span)
if "--all-hours" in args:
    for venue in venues:
        venue["operating_hours"] = "* * * * *"
scenario["events"] = []
with open(path, "w", encoding="utf-8") as f:
    json.dump(scenario, f, ensure_ascii=False, indent=1)
