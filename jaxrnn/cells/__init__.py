"""The recurrent cells, one file each: ``rnn`` and ``irnn`` (elman.py), ``lstm``, ``gru``, ``mingru``, ``minlstm``."""
