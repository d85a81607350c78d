"""The on-disk dataset store: building it from entries in shards (several processes, resumable), its compact
arrays (graph and structure stores), and the cache that keys it by what it read."""
