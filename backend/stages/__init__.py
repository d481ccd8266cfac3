"""Pipeline stages: one module per stage, each ``run(ctx, inputs) -> result`` with its typed record."""
