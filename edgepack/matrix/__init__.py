"""The CI matrix: models x devices x targets x precisions from one file, through a content-addressed artifact
cache, into JUnit, summaries and per-model pack folders; split into jobs for a CI's own fan-out and merged back."""
