"""The recurrent cells of the lecture, one file each: ``rnn`` (Elman), ``lstm``, ``gru``."""
