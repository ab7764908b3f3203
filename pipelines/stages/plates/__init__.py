"""The plate stage (work in progress, not yet in ``STAGES``): confirmed vehicle tracks →
Triton ``plates`` → site format → per-character vote across frames → ``events.plate``.
The pure logic is in ``tracks.py``; docs/plates.md."""
