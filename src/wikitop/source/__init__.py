"""Source: where the hourly dumps come from and how their bytes become lines.

``fetch`` finds an hour's file on the dump server, a mirror folder or the cache; ``download``
is the HTTP side (connection limits, retries, resume, byte ranges); ``gzipfile`` decompresses
and verifies; ``dump_reader`` parses the lines into Arrow pieces for the engines. A new dump
format or a new kind of mirror goes here.
"""
