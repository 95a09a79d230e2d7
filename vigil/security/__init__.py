"""Security: field encryption keys, the hash-chained audit log, de-identification, one-time codes, rate limits."""
