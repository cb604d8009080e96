"""The baseline profile room: its file format (:mod:`.format`), building it from reference data
(:mod:`.build`) and the bounded quantile sketch the build uses (:mod:`.sketch`)."""
