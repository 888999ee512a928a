"""The domain core, free of HTTP: identifiers, values, records, permissions, the store."""
