"""Development harness: what the tests and the benchmarks start (a server, a broker), never shipped in the Bento."""
