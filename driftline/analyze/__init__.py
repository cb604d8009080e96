"""The offline analysis room: windows over data files exactly as the sidecar sees them
(:mod:`.offline`) and the reports made of them (:mod:`.report_table`, :mod:`.report_html`)."""
