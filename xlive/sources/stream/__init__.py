"""Detector zeromq streams (Eiger/SIMPLON V1 and V2): the wire protocol (:mod:`.protocol`), a
spool that writes what arrives into a Zarr store (:mod:`.spool`), the receiving process and the
:class:`~xlive.sources.stream.receiver.StreamSource` (:mod:`.receiver`), and a test sender
(:mod:`.sender`)."""
