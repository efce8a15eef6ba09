"""Training: one seed's training resolved from the params (plan), one loop for every model (loop), its data (data),
seeds (seeds), the best checkpoint (selection) and data-parallel runs (distributed)."""
