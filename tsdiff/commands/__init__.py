"""Sub-commands of the ``tsdiff`` command line (each module has ``main(argv)``)."""
