"""Node parameters declared once (`spec`), and the specs of this package's nodes (`nodes`)."""
