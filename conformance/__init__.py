"""The conformance matrix: every variant x backend x dtype x device, values and gradients."""
