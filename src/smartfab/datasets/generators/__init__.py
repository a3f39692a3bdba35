"""Physics-grounded simulators of machines, one module per machine family."""
