"""Documents and views built from stored runs: batch records, loss waterfalls, the run report (`twin report`)."""
