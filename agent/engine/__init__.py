"""The backup engine: repository format, chunking, crypto, packs, index,
snapshots, backup, restore and check. See docs/format.md."""
