"""Semi-supervised learning's parts: pseudo-label policies and what they share.

:mod:`geossl.ssl.policies` holds one module per algorithm and the registry that
names them; the shared parts are the moving average (:mod:`~geossl.ssl.averaging`),
distribution alignment (:mod:`~geossl.ssl.alignment`), statistics across DDP
processes (:mod:`~geossl.ssl.distributed`), CoMatch's memory
(:mod:`~geossl.ssl.ring_buffer`) and the teacher-student's distillation losses
(:mod:`~geossl.ssl.distillation`).
"""
