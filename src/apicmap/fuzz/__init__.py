"""Differential fuzzing: search VM states and messages for engine disagreements."""
