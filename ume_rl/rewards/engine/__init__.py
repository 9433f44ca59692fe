"""The scoring engine: pseudo-likelihood scoring (``scoring``), its batching and cache, lobster FlexBERT helpers, and the UME and Hugging Face adapters."""
