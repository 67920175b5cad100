"""Parts made of parts: stacks, bidirectional layers, and the readout that stacks on top."""
