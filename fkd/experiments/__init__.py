"""The experiment layer: runs that compute rows into a run directory (evaluate, verify, the exact,
attack and calibration studies, the audit), built on the library and read by the book."""
