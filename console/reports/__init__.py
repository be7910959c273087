"""Reports: the daily device history they stand on (``history``), the
compliance report built from it (``compliance``), its CSV/JSON renderings and
the digests of every copy handed out (``exports``). See docs/reports.md."""
