"""Commit numbered rows through the client endpoint, logging each acknowledged id.

Runs on the client container during the failover test. One row per ~50 ms,
autocommit, reconnecting after any error. An id whose INSERT raised is never
reused and never logged (its outcome is unknown), so every logged id was
acknowledged by PostgreSQL and must survive any failover.

usage: writer.py DSN LOGFILE STOPFILE
"""

import os
import sys
import time

import psycopg2

dsn, log_path, stop_path = sys.argv[1:4]
conn = None
next_id = 0
with open(log_path, "a", buffering=1) as log:
    while not os.path.exists(stop_path):
        row = next_id
        next_id += 1
        try:
            if conn is None:
                conn = psycopg2.connect(dsn, connect_timeout=2)
                conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("INSERT INTO failover_probe (id) VALUES (%s)", (row,))
            log.write(f"ok {row} {time.time():.3f}\n")
        except psycopg2.Error as exc:
            log.write(f"err {row} {time.time():.3f} {type(exc).__name__}\n")
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(0.05)
