"""Publish: results written where users read them, and read back.

``store`` writes a result (data file first, ``_SUCCESS`` marker last) to a folder or any fsspec
URL; ``results`` reads published results back and lists them; ``report`` renders them as one
self-contained HTML page. A new output format or a new way of showing results goes here.
"""
