"""Models: the policy (``policy``), the UME reward model (``ume``), public masked LMs (``masked_lms``) and the small UME trained here (``small_ume``)."""
