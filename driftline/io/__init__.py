"""The data input/output room: streaming readers for reference and analysis data (:mod:`.readers`)."""
