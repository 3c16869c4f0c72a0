"""What `pcpsim bench` can run, apart from the steps themselves, so that the command's parser reads the
names without loading them (they start clusters over gRPC): its steps, in run order (--only's names),
and the engines its scale figure runs on."""

ENGINES = ("wall", "virtual")  # what the scale figure runs on
STEPS = ("fast-path", "drain-one", "scaling", "noise", "scale", "engine", "sweep")  # --only's names, in run order
