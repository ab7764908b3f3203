"""The plate stage: vehicle tracks → Triton ``plates`` → site format → per-character vote
across frames → hotlists and allow lists → ``events.plate``. Pure logic in ``tracks.py``,
the I/O in ``agent.py``, the stage in ``stage.py``; docs/plates.md."""
