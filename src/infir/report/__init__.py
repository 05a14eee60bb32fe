"""The run report: reads a run directory, draws the plots, writes report/index.html."""
