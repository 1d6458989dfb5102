"""Chronogram's benchmarks: the real stack on free ports, five scenarios, a table and a JSON file.

    python -m bench --quick          # smoke run, about a minute
    python -m bench                  # full run (make bench), 10-20 minutes on two cores

See bench/README.md for the scenarios, the goals and the latest figures.
"""
