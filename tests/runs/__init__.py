"""Program test runs: specs, kernels, batches, the store, collection, reports, the programs."""
