"""The recipe catalogue the platform owns: records (tags, availability), and the filters answers obey."""
