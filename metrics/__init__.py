"""Where live decisions are read from: metrics providers behind one interface."""
