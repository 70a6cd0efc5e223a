"""Messages to people, as each channel wants them: pure payload building, no I/O."""
