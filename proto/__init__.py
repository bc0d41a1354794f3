"""weightseal.proto"""
