"""nn.Module -> records: what each leaf layer is (readers), and the stem, blocks and head (walker)."""
