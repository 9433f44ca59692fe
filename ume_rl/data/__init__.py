"""Data: the real corpus (``corpus``), the prompt/reference generator (``generate``) and dataset directories on disk (``store``)."""
