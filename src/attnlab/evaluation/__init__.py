"""attnlab.evaluation"""
