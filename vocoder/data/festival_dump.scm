;; wavenet-service: synthesise sentences with Festival and dump what the vocoder needs.
;;
;; (vocoder_dump TEXT PREFIX WITH_WAVE) writes
;;   PREFIX.lab  HTS full-context labels ("start end context", 100 ns units) with the final segment times,
;;               written by Festival's own hts.scm (hts_feats_output_string), for any voice;
;;   PREFIX.f0   Festival's F0 targets: per final segment "S start end" (seconds, the times the intonation
;;               module saw; 0 0 for a segment the waveform synthesiser inserted), then that segment's targets
;;               "T time hz". Waveform synthesis may re-time segments (the HTS engine predicts its own
;;               durations) or split them (diphone voices), so the caller maps targets segment by segment;
;;   PREFIX.wav  Festival's waveform, when WITH_WAVE is true.
;; The waveform is always synthesised: for HTS voices that is what fixes the final segment durations.
;; A sentence that fails prints "VOCODER-ERROR PREFIX" and the next one goes on.

(require 'hts)

(define (vocoder_mark_times utt)
  (mapcar
   (lambda (seg)
     (item.set_feat seg "vocoder_start" (item.feat seg "segment_start"))
     (item.set_feat seg "vocoder_end" (item.feat seg "end")))
   (utt.relation.items utt 'Segment)))

(define (vocoder_write_targets utt file)
  (let ((ofd (fopen file "w")))
    (mapcar
     (lambda (seg)
       (format ofd "S %f %f\n" (item.feat seg "vocoder_start") (item.feat seg "vocoder_end"))
       (let ((target_seg (item.relation seg 'Target)))
         (if target_seg
             (mapcar
              (lambda (target) (format ofd "T %f %f\n" (item.feat target "pos") (item.feat target "f0")))
              (item.daughters target_seg)))))
     (utt.relation.items utt 'Segment))
    (fclose ofd)))

(define (vocoder_write_labels utt file)
  (let ((ofd (fopen file "w")))
    (mapcar (lambda (seg) (format ofd "%s" (hts_feats_output_string seg))) (utt.relation.items utt 'Segment))
    (fclose ofd)))

(define (vocoder_synth utt prefix with_wave)
  (Initialize utt)
  (Text utt)
  (Token_POS utt)
  (Token utt)
  (POS utt)
  (Phrasify utt)
  (Word utt)
  (Pauses utt)
  (Intonation utt)
  (PostLex utt)
  (Duration utt)
  (Int_Targets utt)
  (vocoder_mark_times utt)
  (Wave_Synth utt)
  (vocoder_write_targets utt (string-append prefix ".f0"))
  (vocoder_write_labels utt (string-append prefix ".lab"))
  (if with_wave (utt.save.wave utt (string-append prefix ".wav") 'riff)))

(define (vocoder_dump text prefix with_wave)
  (unwind-protect
   (vocoder_synth (eval (list (quote Utterance) (quote Text) text)) prefix with_wave)
   (format t "VOCODER-ERROR %s\n" prefix)))
