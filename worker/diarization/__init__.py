"""Who spoke when: speaker embeddings of short pieces of speech, clustered into speakers."""
