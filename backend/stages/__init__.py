"""Pipeline stages: one module per stage, each with run(inputs, ctx) -> artifacts."""
