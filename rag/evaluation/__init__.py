"""Retrieval evaluation over question sets, and the plain recipe it is compared with."""
