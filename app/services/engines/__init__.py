"""What runs a model: the engine-agnostic worker (queue, batching policy, cancel) and one module per engine.

* ``worker`` — ``ModelWorker``/``InferenceRequest``: the queue every engine shares.
* ``transformers_model`` / ``transformers_batch`` — local hub models and folders through transformers.
* ``tgi`` — a Text Generation Inference server or HF Inference Endpoint.
"""
